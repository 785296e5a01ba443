# Container images (issue 10): shards-worker, shards-operator and shards-example-sheep, built with
# buildah on a local debootstrap base (no image registry needed). Included by the top-level
# Makefile, which defines VENV, BIN and the `venv-demo` target. Details: deploy/images/README.md.
#
#   make images                    base (once per machine), wheels, the three images and their
#                                  docker-archives in ~/.cache/shards/images; unchanged inputs rebuild nothing
#   make image-context DIR=path    the build context for `docker build -f deploy/images/<name>/Dockerfile path`
#   make image-archives            print {image: docker-archive} as JSON (for `ctr images import`)

IMAGES_CLI = PYTHONPATH=tests $(BIN)/python -m tooling.images

.PHONY: images image-context image-archives

images: venv-demo
	$(IMAGES_CLI) build

image-context: venv-demo
	@test -n "$(DIR)" || { echo "usage: make image-context DIR=path" >&2; exit 2; }
	$(IMAGES_CLI) context $(DIR)

image-archives: venv-demo
	$(IMAGES_CLI) archives
