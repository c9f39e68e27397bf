# The volstream worker image used by docker-compose.yml.
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml constraints.txt README.md ./
COPY engine engine
COPY streams streams
COPY schemas schemas
COPY alerts alerts
COPY compose compose
COPY data data
RUN pip install --no-cache-dir -c constraints.txt .
CMD ["volstream", "worker"]
