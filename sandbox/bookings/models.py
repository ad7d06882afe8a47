"""The sandbox's domain: customers and their bookings, which messages are sent to and about."""

from django.db import models


class Customer(models.Model):
    name = models.CharField(max_length=100)
    email = models.EmailField(blank=True)
    phone = models.CharField(max_length=30, blank=True, help_text="E.164, e.g. +447911123456.")
    # Read by django_communication as the recipient's language (a code of settings.LANGUAGES).
    language = models.CharField(max_length=15, blank=True)

    def __str__(self) -> str:
        return self.name


class Booking(models.Model):
    ref = models.CharField(max_length=20, unique=True)
    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="bookings")
    created = models.DateTimeField(auto_now_add=True)
    cancelled_at = models.DateTimeField(null=True, blank=True)
    #: When the customer confirmed on the reminder call's keypad (services.on_keypad_reply).
    confirmed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created"]

    def __str__(self) -> str:
        return self.ref
