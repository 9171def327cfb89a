from shop.models import Category, Product


def seed(products: int = 300) -> None:
    if Product.objects.count() == products:
        return
    Product.objects.all().delete()
    Category.objects.all().delete()
    cats = Category.objects.bulk_create(Category(name=f"category {i}") for i in range(12))
    Product.objects.bulk_create(Product(name=f"product {i}", price_cents=100 + i, category=cats[i % 12])
                                for i in range(products))
