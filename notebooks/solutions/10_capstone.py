"""Solutions to lesson 10's exercises (see notebooks/solutions/README.md). Each section replaces
the exercise cell of the same number; `bench` and `ctx` come from the lesson's cells."""

# Exercise 10.1: add a page and rebuild, so that only the COPY step misses the cache
def add_a_page():
    (ctx / "www" / "about.html").write_text("<h1>about this application</h1>\n")
    return bench.cli("build", "-t", "web", str(ctx))


rebuild = add_a_page()

# Exercise 10.2: publish a second port
bench.cli("run", "-d", "--name", "web2", "-p", "8082:80", "-p", "8083:80", "web").check()

# Exercise 10.3: serve the site from a volume
# The new volume is seeded from the image's /www (index.html, cgi-bin/), then httpd serves it.
bench.cli("run", "-d", "--name", "web3", "-p", "8084:80", "-v", "site:/www", "web").check()
