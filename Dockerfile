# syntax=docker/dockerfile:1
# One image for everything cex runs on Kubernetes: the shared services (`cex serve …`), the
# matching engines the operator creates, the migration Job (`cex migrate`) and the operator
# (`cex-operator`). The entrypoint is `cex`; the operator's Deployment sets its command.
#
#   docker build -t cex:0.1.0 .
#
# The build installs the locked dependencies (uv.lock) and the project as a wheel (not
# editable) into a virtualenv at /opt/cex, which the runtime stage copies as is: same path,
# same Python, so its scripts' shebangs stay valid. e2e/packaging/test_wheel.py does the
# same steps without Docker.

ARG PYTHON_VERSION=3.12

FROM python:${PYTHON_VERSION}-slim AS builder
ARG UV_VERSION=0.13.9
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    UV_PROJECT_ENVIRONMENT=/opt/cex
RUN python -m pip install "uv==${UV_VERSION}"
WORKDIR /src
# Dependencies first: this layer is rebuilt only when the lock changes.
COPY pyproject.toml uv.lock ./
RUN uv sync --frozen --no-dev --no-install-project
# Then the project itself, as a wheel (migrations included: cex/infra/migrations/*.sql).
COPY README.md ./
COPY services ./services
COPY operator ./operator
RUN uv sync --frozen --no-dev --no-editable \
 && /opt/cex/bin/cex --help >/dev/null \
 && /opt/cex/bin/python -c "from cex.infra.postgres import migrations; assert migrations()"

FROM python:${PYTHON_VERSION}-slim
LABEL org.opencontainers.image.title="cex" \
      org.opencontainers.image.description="cex exchange: services, matching engine, operator" \
      org.opencontainers.image.licenses="Apache-2.0"
# The uid/gid the chart and the operator's engine pods run as (runAsUser 10001).
RUN groupadd --system --gid 10001 cex \
 && useradd --system --uid 10001 --gid cex --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin cex
COPY --from=builder /opt/cex /opt/cex
ENV PATH=/opt/cex/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
WORKDIR /tmp
USER 10001:10001
ENTRYPOINT ["cex"]
CMD ["--help"]
