# The feature server image: the package, the example definitions, a non-root user.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
RUN useradd --create-home --uid 10001 featurestore
WORKDIR /app

COPY pyproject.toml README.md ./
COPY featurestore ./featurestore
RUN pip install '.[example]'

COPY featurestore.toml ./
COPY definitions ./definitions
RUN mkdir -p /app/data && chown -R featurestore:featurestore /app/data
USER featurestore

EXPOSE 6566
HEALTHCHECK --interval=10s --timeout=3s --retries=3 \
  CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:6566/health', timeout=2)"
CMD ["featurestore", "serve", "--host", "0.0.0.0", "--port", "6566", "--workers", "2"]
