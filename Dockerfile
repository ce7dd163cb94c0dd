# The hosted demo as a container (a Hugging Face Space with the Docker SDK, or any host).
# Public mode: no local model paths; CPU torch; the DINOv2 weights converted at build time.
FROM python:3.11-slim
WORKDIR /app
COPY . /app
RUN bash scripts/setup.sh && python -c "from model import load_model; load_model('dinov2-small', device='cpu')"
ENV PATCHLIGHT_PUBLIC=1 \
    OPENBLAS_NUM_THREADS=1 \
    HF_HOME=/tmp/hf
EXPOSE 8501
CMD ["python", "-m", "streamlit", "run", "app.py", "--server.port=8501", "--server.address=0.0.0.0", "--server.headless=true"]
