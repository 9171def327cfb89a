"""Views the scenarios drive through Django's request handling."""
