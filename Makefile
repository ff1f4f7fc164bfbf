# slurm-vgpu top-level build. C parts build into $(BUILD); nothing built lands in git.
PREFIX  ?= /usr/local
DESTDIR ?=
BUILD   ?= $(CURDIR)/build
# The Python side lives in a virtual environment of this checkout (Debian's Python is externally
# managed); `make deps` creates it from Debian's python3. Its bin/ comes first on PATH for every
# command make runs, so `vgpu`, `python3` and `pytest` are this checkout's.
VENV    ?= $(CURDIR)/.venv
PYTHON  ?= $(VENV)/bin/python
PYTEST_ARGS ?=
# The Slurm release to build and test against: empty = this machine's; 24.11 or 26.05 (or 22.05
# on a machine that is not Debian 12) runs the same target in a Debian chroot of that release.
SLURM   ?=

export PREFIX DESTDIR PYTHON VENV
export PATH := $(VENV)/bin:$(PATH)

# SLURM=X.Y other than this machine's Slurm: the target runs in a Debian chroot of that release
# (contrib/chroot/vgpu-chroot; the image is cached under build/chroot).
HOST_SLURM := $(shell slurmd -V 2>/dev/null | sed -n 's/^[^ ]* \([0-9]*\.[0-9]*\)\..*/\1/p')
IN_CHROOT  := $(if $(SLURM),$(if $(filter $(SLURM),$(HOST_SLURM)),,yes),)
CHROOT_RUN  = contrib/chroot/vgpu-chroot run $(SLURM)

.PHONY: all deps native spank install test lint bench demo deb matrix clean

all: native spank

native:
	$(MAKE) -C native BUILD=$(BUILD)/native

spank:
	$(MAKE) -C spank BUILD=$(BUILD)/spank NATIVE_BUILD=$(BUILD)/native

install: all
	$(MAKE) -C native install BUILD=$(BUILD)/native
	$(MAKE) -C spank install BUILD=$(BUILD)/spank
	@# submit-time refusals: link or copy beside slurm.conf, JobSubmitPlugins=lua (docs/security.md)
	install -D -m 0644 contrib/job_submit/job_submit.lua \
		$(DESTDIR)$(PREFIX)/share/slurm-vgpu/job_submit.lua

# Debian and PyPI packages the build, tests and demo need (installs only what is missing;
# VGPU_NO_BOOTSTRAP=1 skips it).
deps:
	VENV=$(VENV) contrib/bootstrap.sh

lint:
	$(PYTHON) -m ruff check src gres policies tests bench contrib native
	$(PYTHON) -m mypy
	$(PYTHON) -m mypy native/fakegpu/gen_ptsz.py

# The README's test command: lint, build, then the whole suite (Slurm tests included when run as
# root with Debian's Slurm packages; VGPU_REQUIRE_SLURM=1 turns their skips into failures).
ifeq ($(IN_CHROOT),yes)
test:
	$(CHROOT_RUN) -- make test PYTEST_ARGS='$(PYTEST_ARGS)'
else
test: deps
	$(MAKE) all lint
	@# pytest exits 5 when it collected no test; make would turn that into its own 2
	$(PYTHON) -m pytest $(PYTEST_ARGS) || { rc=$$?; [ $$rc -ne 5 ] || \
		echo "make test: pytest collected no tests"; exit $$rc; }
endif

bench: deps
	$(MAKE) all
	$(PYTHON) bench/run.py

ifeq ($(IN_CHROOT),yes)
demo:
	$(CHROOT_RUN) -- make demo

deb:
	$(CHROOT_RUN) --out $(BUILD)/deb -- make deb DEB_OUT=/out
else
demo: deps
	$(MAKE) all
	contrib/demo/run-demo.sh

# build/deb/slurm-vgpu_<version>-1+slurm<X.Y>_<arch>.deb for this machine's Slurm (contrib/deb)
deb: deps
	BUILD=$(BUILD) contrib/deb/build-deb.sh
endif

# Every Slurm release (22.05, 24.11, 26.05), each in fresh chroots: build, tests, demo, .deb
# installed and used; writes build/matrix/compatibility.md. `make matrix RELEASES=24.11` for one.
RELEASES ?=
matrix:
	contrib/chroot/matrix.sh $(RELEASES)

clean:
	rm -rf $(BUILD)
	$(MAKE) -C native clean BUILD=$(BUILD)/native
	$(MAKE) -C spank clean BUILD=$(BUILD)/spank
