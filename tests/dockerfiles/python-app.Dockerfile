FROM python:3.12-slim
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=off
WORKDIR /app
# install dependencies first, for the cache
COPY requirements.txt .
RUN pip install -r requirements.txt
COPY --chown=app:app . /app
EXPOSE 8000
CMD ["gunicorn", "-b", "0.0.0.0:8000", "app:app"]
