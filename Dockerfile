# One image for every Python part of Yigong Hub: API, worker, beat, branch node, LIS bridge.
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 TCP_NODELAY=1 \
    YIGONG_DATA_DIR=/var/lib/yigong
RUN apt-get update \
 && apt-get install -y --no-install-recommends dcmtk curl \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY pyproject.toml README.md ./
COPY hub ./hub
COPY dicom_node ./dicom_node
COPY ecg_ingest ./ecg_ingest
COPY lis_bridge ./lis_bridge
COPY viewer ./viewer
RUN pip install --no-cache-dir .
RUN useradd --system --home /var/lib/yigong yigong && mkdir -p /var/lib/yigong \
 && chown yigong /var/lib/yigong
USER yigong
EXPOSE 8000
CMD ["yigong", "api"]
