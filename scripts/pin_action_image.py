"""Point action.yml's `runs.image` at a pushed image: `python scripts/pin_action_image.py action.yml docker://...@sha256:...`.

Used by the release workflow; main keeps `image: Dockerfile` so self-tests build from source.
"""

import re
import sys
from pathlib import Path


def main():
    path, image = Path(sys.argv[1]), sys.argv[2]
    if not re.fullmatch(r"docker://[a-z0-9./_-]+@sha256:[0-9a-f]{64}", image):
        sys.exit(f"not an image pinned by digest: {image}")
    text = path.read_text()
    pinned, count = re.subn(r"(?m)^(  image: ).*$", rf"\g<1>'{image}'", text)
    if count != 1:
        sys.exit(f"expected one `image:` line under runs in {path}, found {count}")
    path.write_text(pinned)


if __name__ == "__main__":
    main()
