from django.contrib import admin
from django.urls import path

from catalog.models import Category, Product
from customers.admin_import import import_view


@admin.register(Category)
class CategoryAdmin(admin.ModelAdmin):
    list_display = ["path", "depth"]
    search_fields = ["path"]
    readonly_fields = ["depth"]


@admin.register(Product)
class ProductAdmin(admin.ModelAdmin):
    list_display = ["sku", "name", "category_path", "brand", "price", "currency", "stock", "active"]
    list_filter = ["active", "brand", "currency"]
    search_fields = ["=sku", "name"]
    readonly_fields = ["created_at", "updated_at", "similar_products"]
    change_list_template = "admin/catalog/product/change_list.html"

    @admin.display(description="Similar products")
    def similar_products(self, obj):
        from recommender.admin import similar_products_panel

        return similar_products_panel(obj) if obj.pk else "—"

    def get_urls(self):
        return [
            path("import/", self.admin_site.admin_view(self.import_csv), name="catalog_product_import"),
            *super().get_urls(),
        ]

    def import_csv(self, request):
        if not self.has_add_permission(request):
            return self.admin_site.login(request)
        return import_view(request, model_admin=self, kinds=["products"])
