# downloader: build, run, test and benchmark.
#   make            build build/downloader
#   make run        install run deps, build, start redis if needed, run `downloader all`
#                   on HOST:PORT (default 127.0.0.1:8000; .ci/run-local.sh)
#   make test       install test deps, build, run every test (SANITIZE=1 for ASan+UBSan)
#   make install    binary, systemd unit, /etc/downloader config and docs (PREFIX, DESTDIR)
#   make bench      run the benchmarks in bench/
#   make format     clang-format the sources

SANITIZE ?= 0
BUILD    ?= $(if $(filter 1,$(SANITIZE)),build/san,build)
CC       ?= cc
VERSION  ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)

PKGS     := libuv hiredis libcurl yajl rdkafka libmagic libcrypto
CFLAGS   ?= -O2 -g
CFLAGS   += -std=c11 -Wall -Wextra -Werror -Wno-format-zero-length -D_GNU_SOURCE -Iinclude -I$(BUILD)/gen \
            -DDOWNLOADER_VERSION='"$(VERSION)"' -MMD -MP
LDLIBS   += $(shell pkg-config --libs $(PKGS) 2>/dev/null || echo -luv -lhiredis -lcurl -lyajl -lrdkafka -lmagic -lcrypto) \
            -lhttp_parser -lm -lpthread
ifeq ($(SANITIZE),1)
CFLAGS   += -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
LDFLAGS  += -fsanitize=address,undefined
endif

SRC      := $(filter-out src/main.c,$(wildcard src/*.c))
OBJ      := $(SRC:src/%.c=$(BUILD)/obj/%.o) $(BUILD)/obj/gen_lua.o $(BUILD)/obj/gen_web.o
LIB      := $(BUILD)/libdownloader.a
BIN      := $(BUILD)/downloader
UNIT     := $(patsubst test/unit/%.c,$(BUILD)/test/unit/%,$(wildcard test/unit/test_*.c))
INTEG    := $(patsubst test/integration/%.c,$(BUILD)/test/integration/%,$(wildcard test/integration/test_*.c))
TESTLIB  := $(patsubst test/%.c,$(BUILD)/obj/test_%.o,$(wildcard test/lib/*.c))
WEBTESTS := $(wildcard test/dashboard/*.test.js)
SHTESTS  := $(wildcard test/ops/test_*.sh)
TOOLS    := $(patsubst test/tools/%.c,$(BUILD)/test/tools/%,$(wildcard test/tools/*.c))

.PHONY: all deps deps-run run test unit integration bench format clean faults fuzz install
.SECONDARY:

all: $(BIN)

deps:
	@./.ci/deps.sh test

deps-run:
	@./.ci/deps.sh run

$(BUILD)/obj/%.o: src/%.c | $(BUILD)/gen/embedded.h
	@mkdir -p $(@D)
	@echo "  CC      $<"
	@$(CC) $(CFLAGS) -c $< -o $@

$(BUILD)/gen/embedded.h: src/embed.sh
	@mkdir -p $(@D)
	@./src/embed.sh header > $@

$(BUILD)/gen/lua.c: src/embed.sh $(wildcard src/lua/*.lua)
	@mkdir -p $(@D)
	@./src/embed.sh c lua src/lua/*.lua > $@

$(BUILD)/gen/web.c: src/embed.sh $(shell find web -type f 2>/dev/null)
	@mkdir -p $(@D)
	@./src/embed.sh c web $$(find web -type f | sort) > $@

$(BUILD)/obj/gen_%.o: $(BUILD)/gen/%.c $(BUILD)/gen/embedded.h
	@mkdir -p $(@D)
	@echo "  CC      $<"
	@$(CC) $(CFLAGS) -c $< -o $@

$(LIB): $(OBJ)
	@rm -f $@
	@ar rcs $@ $^

$(BIN): $(BUILD)/obj/main.o $(LIB)
	@echo "  LD      $@"
	@$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/obj/test_%.o: test/%.c
	@mkdir -p $(@D)
	@echo "  CC      $<"
	@$(CC) $(CFLAGS) -Itest/lib -c $< -o $@

$(BUILD)/test/unit/%: $(BUILD)/obj/test_unit/%.o $(LIB)
	@mkdir -p $(@D)
	@$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS) -lcmocka

$(BUILD)/test/integration/%: $(BUILD)/obj/test_integration/%.o $(TESTLIB) $(LIB)
	@mkdir -p $(@D)
	@$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS) -lcmocka

$(BUILD)/test/tools/%: $(BUILD)/obj/test_tools/%.o $(LIB)
	@mkdir -p $(@D)
	@$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/bench/%: bench/%.c
	@mkdir -p $(@D)
	@echo "  CC      $<"
	@$(CC) $(CFLAGS) -o $@ $<

HOST ?= 127.0.0.1
PORT ?= 8000
run: deps-run $(BIN)
	@HOST=$(HOST) PORT=$(PORT) ./.ci/run-local.sh $(BIN) config.json

test: deps $(BIN) $(UNIT) $(INTEG) $(TOOLS)
	@BUILD=$(BUILD) ./test/run.sh $(UNIT) $(INTEG) $(WEBTESTS) $(SHTESTS)

# ---- install: `make install [PREFIX=/usr/local] [DESTDIR=]` (docs/operations.md). The
# config under $(SYSCONFDIR)/downloader is installed only when absent, so a reinstall
# keeps local edits; config.json.README next to it documents every key it sets.
PREFIX     ?= /usr/local
SYSCONFDIR ?= /etc
UNITDIR    ?= $(PREFIX)/lib/systemd/system
DOCDIR     ?= $(PREFIX)/share/doc/downloader
install: $(BIN)
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(UNITDIR) $(DESTDIR)$(DOCDIR)/docs \
	    $(DESTDIR)$(SYSCONFDIR)/downloader
	install -m 0755 $(BIN) $(DESTDIR)$(PREFIX)/bin/downloader
	sed -e 's#/usr/local/bin/downloader#$(PREFIX)/bin/downloader#' \
	    -e 's#/etc/downloader/#$(SYSCONFDIR)/downloader/#' contrib/downloader@.service \
	    > $(DESTDIR)$(UNITDIR)/downloader@.service
	chmod 0644 $(DESTDIR)$(UNITDIR)/downloader@.service
	[ -e $(DESTDIR)$(SYSCONFDIR)/downloader/config.json ] || \
	    install -m 0640 contrib/etc/config.json $(DESTDIR)$(SYSCONFDIR)/downloader/config.json
	install -m 0644 contrib/etc/config.json.README $(DESTDIR)$(SYSCONFDIR)/downloader/
	install -m 0644 README.md COPYING $(DESTDIR)$(DOCDIR)/
	install -m 0644 docs/*.md $(DESTDIR)$(DOCDIR)/docs/

unit: $(BIN) $(UNIT) $(TOOLS)
	@BUILD=$(BUILD) ./test/run.sh $(UNIT)

integration: $(BIN) $(INTEG) $(TOOLS)
	@BUILD=$(BUILD) ./test/run.sh $(INTEG)

bench: deps $(BIN) $(TOOLS) $(BUILD)/bench/floor
	@BUILD=$(BUILD) ./bench/run.sh

format:
	clang-format -i src/*.c include/*.h test/*/*.c bench/*.c

clean:
	rm -rf build

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)

# ---- fuzzing: `make fuzz [FUZZ_SECONDS=60]` builds the libFuzzer targets of test/fuzz
# with clang (ASan+UBSan; the library is rebuilt in build/fuzz) and runs each one for
# FUZZ_SECONDS on its seed corpus (test/fuzz/run.sh). Fails when any target crashes.
FUZZ_SECONDS ?= 60
FUZZ_DIR     := build/fuzz
FUZZ_SAN     := -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer
FUZZ_BINS    := $(patsubst test/fuzz/%.c,$(FUZZ_DIR)/%,$(wildcard test/fuzz/fuzz_*.c))
.PHONY: fuzz-bins

fuzz:
	@DEPS_EXTRA="clang libclang-rt-14-dev" ./.ci/deps.sh
	@$(MAKE) --no-print-directory BUILD=$(FUZZ_DIR) CC="clang -fsanitize=fuzzer-no-link $(FUZZ_SAN)" \
	    $(FUZZ_DIR)/libdownloader.a
	@$(MAKE) --no-print-directory fuzz-bins
	@FUZZ_SECONDS=$(FUZZ_SECONDS) ./test/fuzz/run.sh $(FUZZ_BINS)

fuzz-bins: $(FUZZ_BINS)

$(FUZZ_DIR)/fuzz_%: test/fuzz/fuzz_%.c $(FUZZ_DIR)/libdownloader.a
	@echo "  FUZZ    $@"
	@clang -fsanitize=fuzzer $(FUZZ_SAN) -O1 -g -std=c11 -Wall -Wextra -Werror -D_GNU_SOURCE \
	    -Iinclude -o $@ $< $(FUZZ_DIR)/libdownloader.a $(LDLIBS)

# ---- valgrind: `make valgrind` runs test_api, test_pipeline, test_auth and test_guard with
# every daemon under valgrind --leak-check=full (test/valgrind.sh). VALGRIND_TESTS='$(INTEG)'
# runs every integration test.
VALGRIND_TESTS ?= $(addprefix $(BUILD)/test/integration/,test_api test_pipeline test_auth test_guard)
.PHONY: valgrind

valgrind: deps $(BIN) $(INTEG) $(TOOLS)
	@command -v valgrind >/dev/null || DEPS_EXTRA=valgrind ./.ci/deps.sh
	@BUILD=$(BUILD) ./test/valgrind.sh $(VALGRIND_TESTS)

# ---- fault suite: `make faults` runs test/faults (docs/faults.md): 1,000 jobs per scenario
# through kill -9s, a Redis restart, sink and broker outages, bad origins and a full
# storage_dir. FAULTS_SEED=<n> reproduces the random moments, FAULTS_ONLY=<pattern> picks tests.
FAULTS := $(patsubst test/faults/%.c,$(BUILD)/test/faults/%,$(wildcard test/faults/test_*.c))

faults: deps $(BIN) $(FAULTS) $(TOOLS)
	@BUILD=$(BUILD) ./test/run.sh $(FAULTS)

$(BUILD)/test/faults/%: $(BUILD)/obj/test_faults/%.o $(TESTLIB) $(LIB)
	@mkdir -p $(@D)
	@$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS) -lcmocka
