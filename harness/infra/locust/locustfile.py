"""Load for the lab app: book pages, uncached and cached, Zipf-like popularity."""
import random

from locust import FastHttpUser, between, task

HOT = list(range(1, 51))
ALL = list(range(1, 1001))


class Reader(FastHttpUser):
    wait_time = between(0, 0.01)

    @task(6)
    def hot_book(self):
        self.client.get(f"/books/{random.choice(HOT)}/", name="/books/[id]/")

    @task(3)
    def cached_book(self):
        self.client.get(f"/books/{random.choice(HOT)}/cached/", name="/books/[id]/cached/")

    @task(1)
    def any_book(self):
        self.client.get(f"/books/{random.choice(ALL)}/", name="/books/[id]/")
