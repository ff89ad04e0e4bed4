"""Lesson 05b's exercises, solved (see notebooks/solutions/README.md)."""

# Exercise 05b.1
import requests


def tag_digest(tag):
    answer = requests.head(f"http://{DOMAIN}/v2/lesson/busybox/manifests/{tag}",
                           headers={"Accept": client.ACCEPT}, timeout=10)
    answer.raise_for_status()
    return answer.headers["Docker-Content-Digest"]

# Exercise 05b.2
import requests

digest = old.json["layers"][0]["digest"]
layer_bytes = requests.get(f"http://{DOMAIN}/v2/lesson/busybox/blobs/{digest}",
                           timeout=10).content

# Exercise 05b.3
import requests

digest = old.json["layers"][0]["digest"]
rest = requests.get(f"http://{DOMAIN}/v2/lesson/busybox/blobs/{digest}",
                    headers={"Range": "bytes=1000-"}, timeout=10)
