"""Recipients stored as model rows (our send()/emit() take ``to=<model>``), and a booking
inserted by the producer-cost phase's business transaction."""

from django.db import models


class Recipient(models.Model):
    name = models.CharField(max_length=100)
    email = models.EmailField()

    class Meta:
        app_label = "benchapp"

    def __str__(self) -> str:
        return self.name


class Booking(models.Model):
    ref = models.CharField(max_length=20)
    name = models.CharField(max_length=100)
    email = models.EmailField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        app_label = "benchapp"

    def __str__(self) -> str:
        return self.ref
