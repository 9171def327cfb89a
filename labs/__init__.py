"""The Django project the scenarios exercise: a bookstore with realistic relations."""
