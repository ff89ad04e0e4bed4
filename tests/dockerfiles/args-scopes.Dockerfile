ARG BASE_IMAGE=alpine
ARG VERSION=3.19
FROM ${BASE_IMAGE}:${VERSION} AS base
ARG VERSION
ARG USER=app
ARG UID=1000
RUN adduser -D -u "$UID" "$USER"
USER ${USER}
WORKDIR /home/${USER:-nobody}
ENV APP_HOME=/home/${USER} APP_VERSION="${VERSION:?version is required}"

FROM base AS test
RUN echo testing ${APP_VERSION}
FROM base
COPY --from=test /etc/hostname /tmp/built-after-test
