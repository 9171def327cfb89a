from django.http import JsonResponse

from shop.models import Product


def product_list(request):
    """The slow endpoint: one query per product for its category (an N+1)."""
    return JsonResponse([{"id": p.id, "name": p.name, "category": p.category.name}
                         for p in Product.objects.order_by("id")[:100]], safe=False)


def product_list_fixed(request):
    return JsonResponse([{"id": p.id, "name": p.name, "category": p.category.name}
                         for p in Product.objects.select_related("category").order_by("id")[:100]], safe=False)
