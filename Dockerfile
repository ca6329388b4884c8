# One image for every role; EXTRAS picks what it carries: "" for web/beat/CPU workers (no torch),
# "[worker]" for GPU workers (torch + transformers). Build the GPU image on a CUDA base by setting
# BASE_IMAGE, e.g. pytorch/pytorch:2.6.0-cuda12.4-cudnn9-runtime.
ARG BASE_IMAGE=python:3.11-slim
FROM ${BASE_IMAGE}
ARG EXTRAS=""
ENV PYTHONUNBUFFERED=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /app
COPY pyproject.toml README.md ./
COPY arena arena
COPY voting voting
COPY ranking ranking
COPY workers workers
RUN pip install --no-cache-dir ".${EXTRAS}"
COPY . .
RUN SECRET_KEY=build DATABASE_URL=sqlite:////tmp/build.sqlite3 python manage.py collectstatic --noinput -v0
RUN useradd --create-home arena && chown -R arena /app
USER arena
EXPOSE 8000
CMD ["python", "manage.py", "serve", "--host", "0.0.0.0", "--port", "8000"]
