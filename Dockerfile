# Revtops Workbench: one image for every service of a team deployment (see deploy/compose.yaml).
# The entrypoint is the `revtops` command; the service is its argument (app, scheduler, worker,
# db upgrade, status).

# --- the wheel, built as `pip wheel .` builds it (stock notebooks and the chat's bundle inside)
FROM python:3.11-slim AS wheel
WORKDIR /src
COPY pyproject.toml README.md ./
COPY revtops_kernel revtops_kernel
COPY extensions extensions
COPY notebooks notebooks
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /wheels .

# --- the runtime
FROM python:3.11-slim
# WeasyPrint lays PDF reports out with Pango and needs a font; poppler-utils renders PDF pages
# (the same Debian packages .ci/setup installs, minus the test-only servers and browser).
RUN apt-get update \
    && apt-get install -y --no-install-recommends \
        libpango-1.0-0 libpangoft2-1.0-0 fonts-dejavu-core poppler-utils \
    && rm -rf /var/lib/apt/lists/*
COPY --from=wheel /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
# Not root: the notebooks' kernels run as this user. /data holds REVTOPS_HOME and the runs'
# output notebooks (a volume shared by the app, the schedulers and the workers).
RUN useradd --create-home --uid 10001 revtops && mkdir -p /data && chown revtops /data
USER revtops
WORKDIR /home/revtops
ENV PYTHONUNBUFFERED=1 \
    REVTOPS_HOME=/data/revtops \
    REVTOPS_RUNS_DIR=/data/runs
EXPOSE 8866
ENTRYPOINT ["revtops"]
CMD ["app", "--ip", "0.0.0.0", "--port", "8866", "--no-browser"]
