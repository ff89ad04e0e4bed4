from alpine:3.19 as build
run echo lower case instructions work
copy --from=build /etc/os-release /tmp/
env key=value
workdir /tmp
user root
expose 8080
cmd ["sh"]
entrypoint /bin/sh -c
