# imagefactory — the two commands a fresh machine needs:
#   make golden-ztest DISTRO=debian13     build a ztest golden
#   make test                             install everything and run the project's tests

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
CLI    := $(BIN)/imagefactory
DISTRO ?=
SOURCE ?=
STAMP  := $(VENV)/.installed

.PHONY: help venv host-deps test test-fast test-e2e lint golden golden-ztest ztest rc clean \
	install-timers install install-recipes

help:
	@echo "make golden-ztest DISTRO=<name|all> [SOURCE=bootstrap]  build ztest golden(s)"
	@echo "make golden DISTRO=<name|all> [SOURCE=bootstrap]        build lean golden(s)"
	@echo "make ztest DISTRO=<name|all> [SUITE=quick|linux|linux-fault | RUN=test | GROUP=g1,g2 | RECIPE=file]"
	@echo "                 run the ZFS test suite in clones of the ztest golden(s)"
	@echo "make rc [DISTROS=d1,d2] [SOURCE=bootstrap] [SUITE=...|RUN=...|GROUP=...]"
	@echo "                 rebuild the ztest goldens, gate on the quick suite (or the selection)"
	@echo "make test        host tools + venv + ruff + mypy + pytest (all tests, VMs and e2e incl.)"
	@echo "make test-fast   the same without tests that boot VMs"
	@echo "make test-e2e    end-to-end tests on the real Debian ztest golden (slow)"
	@echo "make lint        ruff + mypy"
	@echo "make clean       remove the venv and caches (never goldens or the image cache)"
	@echo "make install [DESTDIR=...] [PREFIX=/usr/local]"
	@echo "                 install the shipped recipes in PREFIX/share/klab/recipes/<name>.sh"
	@echo "make install-timers [DESTDIR=...] [KLAB=/usr/local/bin/klab]"
	@echo "                 install the weekly linux.run timer (contrib/systemd)"

# The zfs store imports Debian's python3-pyzfs (module libzfs_core), which lives in the
# system site-packages of Debian's own python3: on a ZFS host build the venv with
#   make PYTHON=/usr/bin/python3 VENV_FLAGS=--system-site-packages
VENV_FLAGS ?=
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV_FLAGS) $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

host-deps:
	bash scripts/host-deps.sh

lint: $(STAMP)
	$(BIN)/ruff check imagefactory tests bench
	$(BIN)/ruff format --check imagefactory tests bench
	$(BIN)/mypy

# Everything, the end-to-end tests on the real Debian ztest golden included (that golden and
# the ZFS-host image are built on first use and cached under ~/.cache/imagefactory-tests/).
test: host-deps lint
	$(BIN)/python -m pytest

# Only the end-to-end tests.
test-e2e: host-deps $(STAMP)
	$(BIN)/python -m pytest -m e2e

test-fast: $(STAMP)
	$(BIN)/python -m pytest -m 'not vm'

golden-ztest: host-deps $(STAMP)
	@test -n "$(DISTRO)" || { echo "usage: make golden-ztest DISTRO=<name|all>"; exit 2; }
	$(CLI) golden-ztest $(DISTRO) $(if $(SOURCE),--source $(SOURCE))

golden: host-deps $(STAMP)
	@test -n "$(DISTRO)" || { echo "usage: make golden DISTRO=<name|all>"; exit 2; }
	$(CLI) golden $(DISTRO) $(if $(SOURCE),--source $(SOURCE))

# The test stage; `make test` stays the project's own tests.  One selection, quick by default.
SUITE  ?=
RUN    ?=
GROUP  ?=
RECIPE ?=
DISTROS ?=
SELECT = $(if $(RUN),--run $(RUN),$(if $(GROUP),--group $(GROUP),$(if $(RECIPE),--recipe $(RECIPE),--suite $(or $(SUITE),quick))))
ztest: $(STAMP)
	@test -n "$(DISTRO)" || { echo "usage: make ztest DISTRO=<name|all> [SUITE=...|RUN=...|GROUP=...|RECIPE=...]"; exit 2; }
	$(CLI) test $(DISTRO) $(SELECT)

rc: host-deps $(STAMP)
	$(CLI) rc $(if $(DISTROS),--distros $(DISTROS)) $(if $(SOURCE),--source $(SOURCE)) $(SELECT)

# The weekly linux.run (contrib/systemd): the units, with the installed klab's path written
# in, go to $(DESTDIR)$(SYSTEMD_UNIT_DIR).  Enabling the timer is left to the admin.
PREFIX ?= /usr/local
BINDIR ?= $(PREFIX)/bin
KLAB ?= $(BINDIR)/klab
SYSTEMD_UNIT_DIR ?= /etc/systemd/system
TIMER_UNITS := klab-weekly-linux.service klab-weekly-linux.timer
install-timers:
	@case '$(KLAB)' in /*) ;; *) echo "KLAB=$(KLAB): give the absolute path of the installed klab"; exit 2 ;; esac
	install -d -m 0755 '$(DESTDIR)$(SYSTEMD_UNIT_DIR)'
	set -e; for unit in $(TIMER_UNITS); do \
	    sed 's|@KLAB@|$(KLAB)|g' "contrib/systemd/$$unit" >"$(DESTDIR)$(SYSTEMD_UNIT_DIR)/.$$unit.tmp"; \
	    chmod 0644 "$(DESTDIR)$(SYSTEMD_UNIT_DIR)/.$$unit.tmp"; \
	    mv -f "$(DESTDIR)$(SYSTEMD_UNIT_DIR)/.$$unit.tmp" "$(DESTDIR)$(SYSTEMD_UNIT_DIR)/$$unit"; \
	done
	@echo "enable with: systemctl daemon-reload && systemctl enable --now klab-weekly-linux.timer"

# The shipped recipes, under the names the goldens carry (<name>.sh, next to their _lib.sh):
# users copy one to /var/lib/klab/recipes/ and run `klab test DISTRO --recipe NAME`.
# Installed files are replaced (a rename: a running recipe keeps its old file).
RECIPES_DIR ?= $(PREFIX)/share/klab/recipes
install: install-recipes
install-recipes:
	install -d -m 0755 '$(DESTDIR)$(RECIPES_DIR)'
	set -e; for file in hooks/payload/recipes/*.sh; do \
	    name=$${file##*/}; mode=0755; case $$name in _*) mode=0644 ;; esac; \
	    install -m $$mode "$$file" "$(DESTDIR)$(RECIPES_DIR)/.$$name.tmp"; \
	    mv -f "$(DESTDIR)$(RECIPES_DIR)/.$$name.tmp" "$(DESTDIR)$(RECIPES_DIR)/$$name"; \
	done
	@echo "recipes installed in $(DESTDIR)$(RECIPES_DIR)"

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache *.egg-info
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
