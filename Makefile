# Two commands on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
CONFIG ?= config.yml

.PHONY: run test check bench clean browser

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

run: $(STAMP)
	@if [ -f "$(CONFIG)" ]; then exec $(BIN)/chatgpt-wecom run --config $(CONFIG); fi; \
	echo "No $(CONFIG) here, so this is a DEMO: the daemon runs against a built-in WeCom stand-in (nothing"; \
	echo "reaches a real WeCom), with your model if APIKEY is set, else an echo model that says it is one, and"; \
	echo "the terminal UI opens on its Playground. Data goes to ./demo-data. Ctrl+Q quits the UI and the demo."; \
	echo "To set up for real:"; \
	echo "  1. cp config.example.yml $(CONFIG)"; \
	echo "  2. Fill in, from the WeCom admin console (work.weixin.qq.com → 应用管理 → your self-built app):"; \
	echo "       corp_id            我的企业 → 企业信息 → 企业ID"; \
	echo "       agent_id           the app's AgentId"; \
	echo "       agent_secret       the app's Secret"; \
	echo "       receive_msg_token  接收消息 → 设置API接收 → Token"; \
	echo "       receive_msg_key    接收消息 → 设置API接收 → EncodingAESKey"; \
	echo "     and the model: api_key (plus base_url / model, or the azure_* keys)."; \
	echo "  3. make run   ($(BIN)/chatgpt-wecom check --config $(CONFIG) first says what is missing)"; \
	echo; \
	exec $(BIN)/chatgpt-wecom demo

# One worker per core (pytest-xdist): every test has its own temp dir, ports and daemon, so they run side by side.
test: $(STAMP) | browser
	$(BIN)/python -m pytest -n auto

# Chromium for the browser tests (tests/web/test_history_browser.py), from Debian's packages when we can install
# them; otherwise those tests are skipped and say why.
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  if command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
	    echo "installing Debian's chromium for the browser tests"; \
	    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } \
	      || echo "could not install chromium: the browser tests will be skipped"; \
	  else \
	    echo "no chromium (and no apt-get as root to install it): the browser tests will be skipped"; \
	  fi; \
	}

check: $(STAMP)
	$(BIN)/ruff check chatgpt_wecom tests bench
	$(BIN)/ruff format --check chatgpt_wecom tests bench
	$(BIN)/mypy

bench: $(STAMP)
	$(BIN)/python bench/callback.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
