FROM node:20-alpine AS assets
WORKDIR /web
COPY package.json package-lock.json ./
RUN npm ci
COPY . .
RUN npm run build

FROM nginx:1.25-alpine
LABEL org.opencontainers.image.title="static site" \
      org.opencontainers.image.source=https://example.org/site \
      maintainer="Web Team <web@example.org>"
COPY --from=assets --link /web/dist /usr/share/nginx/html
COPY nginx.conf /etc/nginx/conf.d/default.conf
HEALTHCHECK --interval=30s --timeout=3s --start-period=5s --retries=3 \
  CMD wget -qO- http://localhost/ || exit 1
STOPSIGNAL SIGQUIT
