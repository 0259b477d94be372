# Two commands do all the set-up on a fresh machine:
#   make demo   installs streamer and runs the demo on the offline default models
#   make test   installs streamer with its test tools and runs the tests
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

# Real servers and a real browser for the stream tests: GStreamer's gst-rtsp-server (driven by the
# system Python) and headless Chromium for the live view.
TEST_PACKAGES := gir1.2-gst-rtsp-server-1.0 python3-gi gstreamer1.0-plugins-base gstreamer1.0-plugins-good \
	gstreamer1.0-plugins-ugly gstreamer1.0-plugins-bad gstreamer1.0-libav glib-networking openssl chromium
RTSP_CHECK := import gi; gi.require_version("GstRtspServer", "1.0"); from gi.repository import Gio, Gst; Gst.init(None); \
	assert all(Gst.ElementFactory.find(e) for e in ("x264enc", "rtph264pay", "decodebin", "multifilesrc")); \
	assert Gio.TlsBackend.get_default().supports_tls()

.PHONY: install system-deps demo test lint bench clean occlusion-data train-occlusion-cpu train-occlusion-gpu \
	eval-occlusion

# The occluder model's recipes (see models/occlusion/MODEL_CARD.md). They read ../shared, never the product.
SHARED ?= ../shared
OCCLUSION_DATA ?= out/occlusion-data
OCCLUSION_DATA_ARGS := --faces $(SHARED)/data/masked_faces/without_mask $(SHARED)/data/faces/identities \
	--occluders $(SHARED)/data/occluders --detector-model $(SHARED)/models/scrfd_2.5g_bnkps.onnx --seed 0

$(BIN)/streamer: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $@

install: $(BIN)/streamer

demo: install
	$(BIN)/streamer demo --out out/demo

system-deps:
	@if /usr/bin/python3 -c '$(RTSP_CHECK)' 2>/dev/null && command -v chromium openssl >/dev/null; then :; \
	elif [ "$$(id -u)" = 0 ]; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $(TEST_PACKAGES); \
	else echo "The stream tests need: sudo apt-get install $(TEST_PACKAGES) (they are skipped without it)"; fi

test: install system-deps
	$(BIN)/python -m pytest -q

lint: install
	$(BIN)/ruff check streamer engines tests benchmarks

bench: install
	$(BIN)/python benchmarks/demo_fps.py

occlusion-data: install
	$(BIN)/streamer data occlusion $(OCCLUSION_DATA_ARGS) --per-face 2 --out $(OCCLUSION_DATA)

# CPU (2 cores): about 25 min of training.
train-occlusion-cpu: occlusion-data
	$(BIN)/streamer train occlusion --data $(OCCLUSION_DATA)/yolo/data.yaml --out out/runs/occlusion-cpu \
		--epochs 12 --imgsz 160 --batch 32 --seed 0

# One H200-class GPU: 8 samples per photo, 150 epochs (not run yet: no GPU was lent to this work).
train-occlusion-gpu: install
	$(BIN)/streamer data occlusion $(OCCLUSION_DATA_ARGS) --per-face 8 --out $(OCCLUSION_DATA)-gpu
	$(BIN)/streamer train occlusion --data $(OCCLUSION_DATA)-gpu/yolo/data.yaml --out out/runs/occlusion-gpu \
		--epochs 150 --imgsz 160 --batch 256 --workers 8 --device 0 --seed 0

eval-occlusion: install
	$(BIN)/python benchmarks/occlusion_model.py --model streamer/occlusion/weights/occluders-yolo11n-seg.onnx --data $(OCCLUSION_DATA)

clean:
	rm -rf out .pytest_cache
