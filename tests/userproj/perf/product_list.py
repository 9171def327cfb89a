"""The shop's product list endpoint: the current view vs a fixed one, through Django's request handling."""
from pathlib import Path

from harness.scenario import Case, Scenario, Variant, queries_at_most, same_result_as


def _view(fn_name: str):
    def make(ctx):
        from django.test import RequestFactory

        from shop import views

        view, factory = getattr(views, fn_name), RequestFactory()
        return lambda: view(factory.get("/products/")).content.decode()
    return make


SCENARIO = Scenario(
    name="product_list",
    title="The shop's product list: N+1 vs select_related",
    requires=frozenset({"postgres"}),
    profiles={"quick": {"products": 300}, "full": {"products": 3000}},
    cases=lambda p: [Case("products", dict(p), "current",
                          (Variant("current", _view("product_list")), Variant("fixed", _view("product_list_fixed"))),
                          (same_result_as("fixed", "current"), queries_at_most("fixed", 1),
                           queries_at_most("current", 1)),  # the current view fails this: it is reported
                          columns=("queries",))],
    setup=lambda ctx: __import__("shop.seed", fromlist=["seed"]).seed(ctx.params["products"]),
    lesson_file=Path(__file__).with_suffix(".md"),
)
