FROM alpine:3.19
RUN apk add --no-cache \
        bash \
    # a comment inside the continuation
        curl \
  # indented comment
        git
RUN echo one \
\
    && echo two
RUN echo "trailing spaces after the backslash" \   
    && true
RUN echo 'a literal backslash at the end' \\
CMD echo done
