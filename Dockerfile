# The search service on CPU. Build: docker build -t nac-hash .   (podman build works the same)
# Run:   docker run -p 8000:8000 -v /path/to/index:/data/index nac-hash
# The index directory is built beforehand with `nac-hash index build IMAGES --out /path/to/index`; images are
# served from the folders recorded in it, so mount those too, at the same paths.
#
# BASE_IMAGE: any image with Python >= 3.11 and pip (scripts/container-check.sh makes one from the Debian
# archive where no registry answers). TORCH_INDEX: where torch comes from; the default is PyTorch's CPU wheels
# (PyPI's default torch carries CUDA: several GB more).
ARG BASE_IMAGE=python:3.11-slim
FROM ${BASE_IMAGE}
ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu

WORKDIR /app
RUN python -m pip install --no-cache-dir torch==2.14.1 torchvision==0.29.1 --index-url "${TORCH_INDEX}"
COPY pyproject.toml setup.py README.md ./
COPY nac_hash nac_hash
COPY training training
COPY index_data index_data
COPY service service
RUN python -m pip install --no-cache-dir ".[milvus]" && useradd --create-home nac && mkdir -p /data \
    && chown nac /data
USER nac

# Listening beyond loopback, the service refuses writes (POST/DELETE /items) unless NAC_HASH_API_KEY is set
# (docker run -e NAC_HASH_API_KEY=...), or NAC_HASH_ALLOW_OPEN_WRITES=true lets anyone write.
ENV NAC_HASH_INDEX=/data/index NAC_HASH_HOST=0.0.0.0 NAC_HASH_PORT=8000
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s \
    CMD python -c "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/readyz', timeout=4).status != 200)"
CMD ["nac-hash", "serve"]
