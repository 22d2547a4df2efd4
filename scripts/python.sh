#!/usr/bin/env bash
# Build the Python package (`import fhe_kv`, crates/fhe-kv-python) as a wheel in
# target/wheels and install it into target/python-venv, a venv of the system Python that
# also sees the Debian python3-psycopg (scripts/setup.sh). maturin and pytest come from
# PyPI, once.
#
# The wheel is built with the dev profile, whose dependencies are optimised (Cargo.toml):
# it shares the compiled TFHE-rs with the client's tests instead of building it again
# (~6 min). PYTHON_PROFILE=release builds a release wheel.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=target/python-venv
profile=${PYTHON_PROFILE:-dev}
if [ ! -x "$venv/bin/python" ]; then
    /usr/bin/python3 -m venv --system-site-packages "$venv"
fi
if ! "$venv/bin/python" -c 'import maturin, pytest' 2>/dev/null; then
    echo "python: installing maturin and pytest into $venv"
    "$venv/bin/pip" install -q 'maturin>=1.5,<2' 'pytest>=7'
fi
rm -rf target/wheels
"$venv/bin/maturin" build --profile "$profile" -m crates/fhe-kv-python/Cargo.toml \
    --out target/wheels --compatibility linux
"$venv/bin/pip" install -q --force-reinstall --no-deps target/wheels/fhe_kv-*.whl
echo "python: $(ls target/wheels/*.whl) installed in $venv"
"$venv/bin/python" -c 'import fhe_kv; print("python: import fhe_kv", fhe_kv.__version__)'
