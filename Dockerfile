# The rollguard image used by docker-compose.yml (topic-init and worker services).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# torch from its CPU-only index first, so the install below does not pull the multi-GB CUDA build.
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
RUN pip install --index-url "${TORCH_INDEX_URL}" torch

WORKDIR /app
COPY pyproject.toml README.md ./
COPY src ./src
RUN pip install . && python -c "import rollguard.cli"

COPY topics ./topics
ENV ROLLGUARD_TOPICS_DIR=/app/topics

RUN useradd --create-home --uid 10001 rollguard && mkdir -p /data && chown rollguard /data
USER rollguard
VOLUME ["/data"]
EXPOSE 6066
CMD ["rollguard", "--help"]
