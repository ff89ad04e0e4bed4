FROM alpine
COPY --chown="app user":app --from="stage name" a b
RUN --mount="type=secret,id=token" cat /run/secrets/token
RUN --security=insecure -- --not-a-flag
RUN --network=host wget -O- http://example.org
