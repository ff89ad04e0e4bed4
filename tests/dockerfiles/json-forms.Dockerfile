FROM busybox
CMD ["echo", "exec form"]
CMD [ "echo" , "spaces inside" ]
CMD ['single', 'quotes are shell form']
CMD ["unterminated"
ENTRYPOINT []
RUN ["sh", "-c", "echo \"escaped\" \u00e9"]
SHELL ["/bin/sh", "-eu", "-c"]
RUN echo [not json]
VOLUME ["/a"] trailing
