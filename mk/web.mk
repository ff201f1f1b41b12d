# The web UI (services/web, Next.js + TypeScript): its checks run in `make test`; `make up`
# builds and serves it (cex.stack.web). npm packages come from scripts/bootstrap.sh (npm ci,
# only when the lockfile changed).
WEB_DIR := services/web
NPM_WEB := npm --prefix $(WEB_DIR) --silent

.PHONY: web-check

web-check: bootstrap ## The web UI: ESLint, tsc --noEmit and the Vitest unit tests
	$(NPM_WEB) run lint
	$(NPM_WEB) run typecheck
	$(NPM_WEB) test
