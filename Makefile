# Two commands on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
CONFIG ?= config.yml

.PHONY: run test check bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

run: $(STAMP)
	@if [ ! -f "$(CONFIG)" ]; then \
	  echo "No $(CONFIG) here."; \
	  echo "  1. cp config.example.yml $(CONFIG)"; \
	  echo "  2. Fill in, from the WeCom admin console (work.weixin.qq.com → 应用管理 → your self-built app):"; \
	  echo "       corp_id            我的企业 → 企业信息 → 企业ID"; \
	  echo "       agent_id           the app's AgentId"; \
	  echo "       agent_secret       the app's Secret"; \
	  echo "       receive_msg_token  接收消息 → 设置API接收 → Token"; \
	  echo "       receive_msg_key    接收消息 → 设置API接收 → EncodingAESKey"; \
	  echo "     and the model: api_key (plus base_url / model, or the azure_* keys)."; \
	  echo "  3. make run"; \
	  exit 2; \
	fi
	$(BIN)/chatgpt-wecom run --config $(CONFIG)

test: $(STAMP)
	$(BIN)/python -m pytest

check: $(STAMP)
	$(BIN)/ruff check chatgpt_wecom tests bench
	$(BIN)/ruff format --check chatgpt_wecom tests bench
	$(BIN)/mypy

bench: $(STAMP)
	$(BIN)/python bench/callback.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
