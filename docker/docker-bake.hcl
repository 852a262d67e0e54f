// docker buildx bake -f docker/docker-bake.hcl        (both variants; context: the repository root)
variable "REGISTRY" { default = "ghcr.io/quote-dev" }
variable "VERSION" { default = "0.1.0" }

group "default" { targets = ["cpu", "cuda"] }

target "cpu" {
  context    = "."
  dockerfile = "docker/Dockerfile"
  args       = { TORCH_INDEX_URL = "https://download.pytorch.org/whl/cpu" }
  tags       = ["${REGISTRY}/quote:${VERSION}"]
}

target "cuda" {
  inherits = ["cpu"]
  args     = { TORCH_INDEX_URL = "https://download.pytorch.org/whl/cu128" }
  tags     = ["${REGISTRY}/quote:${VERSION}-cuda"]
}
