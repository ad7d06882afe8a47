"""Benchmark of django_communication + outbox against django-post-office (issue 6).

Run ``python bench/run.py --help``; nothing here is imported by the library or its tests.
"""
