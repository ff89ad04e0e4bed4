FROM alpine:3.19
ADD --checksum=sha256:24454f830cdb571e2c4ad15481119c43b3cafd48dd869a9b2945d1036d1dc68d https://example.org/tool.tar.gz /tmp/
ADD --keep-git-dir=true https://github.com/example/repo.git#v1.0 /src/repo
ADD --chown=1000:1000 --chmod=0755 rootfs.tar.xz /
ADD ["file with spaces.txt", "/dest dir/"]
COPY --chmod=644 --exclude=*.md docs/ /usr/share/doc/app/
COPY --parents ./a/b/c.txt /out/
