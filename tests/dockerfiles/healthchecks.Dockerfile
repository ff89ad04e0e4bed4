FROM redis:7
HEALTHCHECK NONE
HEALTHCHECK --interval=5m --timeout=3s \
  CMD ["redis-cli", "ping"]
HEALTHCHECK --start-interval=1s --start-period=30s CMD redis-cli ping | grep PONG
