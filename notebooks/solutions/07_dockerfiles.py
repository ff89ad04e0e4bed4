"""Solutions to lesson 07's exercises (Dockerfiles), for instructors."""

# Exercise 07.1: a Dockerfile whose image prints "hello from 07" and works in /app
my_dockerfile = """\
FROM busybox
WORKDIR /app
CMD ["echo", "hello from 07"]
"""

# Exercise 07.2: the same build, ordered so that editing notes.txt keeps the RUN cached
reordered = """\
FROM busybox
RUN sleep 1 && echo slow > /slow
COPY . /ctx
CMD ["cat", "/slow", "/ctx/notes.txt"]
"""

# Exercise 07.3: a .dockerignore that keeps secrets/ and the *.log files out, but logs/keep.log in
ignore = """\
secrets
**/*.log
!logs/keep.log
"""
