FROM ubuntu:22.04
MAINTAINER Jane Doe <jane@example.org>
ENV LANG C.UTF-8
ENV PATH /opt/tool/bin:$PATH
ENV A=1 B="two words" C=three\ words
LABEL version="1.0" description="a \"quoted\" label"
VOLUME /data
VOLUME ["/logs", "/cache"]
EXPOSE 80/tcp 443 53/udp
ONBUILD COPY . /app/src
ONBUILD RUN make -C /app/src
