from django.contrib import admin

from .models import Booking, Customer


@admin.register(Customer)
class CustomerAdmin(admin.ModelAdmin):
    list_display = ("name", "email", "phone", "language")
    search_fields = ("name", "email", "phone")


@admin.register(Booking)
class BookingAdmin(admin.ModelAdmin):
    list_display = ("ref", "customer", "created", "confirmed_at", "cancelled_at")
    list_select_related = ("customer",)
    search_fields = ("ref", "customer__name")
    date_hierarchy = "created"
