#!/usr/bin/env bash
# Print the path of a Python interpreter of version $1 (e.g. 3.11 or 3.10), or fail with a hint.
# Looks at pythonX.Y on PATH (checking its real version), then at pyenv's versions.
set -u
want="$1"
check() { "$1" -c "import sys; sys.exit(0 if '%d.%d' % sys.version_info[:2] == '$want' else 1)" 2>/dev/null; }
for cand in "python$want"; do
  p=$(command -v "$cand" 2>/dev/null) || continue
  if PYENV_VERSION="$(pyenv versions --bare 2>/dev/null | grep -E "^$want(\.|$)" | tail -n1)" check "$p"; then
    v=$(PYENV_VERSION="$(pyenv versions --bare 2>/dev/null | grep -E "^$want(\.|$)" | tail -n1)" "$p" -c 'import sys; print(sys.executable)')
    echo "$v"; exit 0
  fi
done
root=$(pyenv root 2>/dev/null || echo "$HOME/.pyenv")
for p in "$root"/versions/"$want".*/bin/python /usr/bin/python"$want" /usr/local/bin/python"$want"; do
  if [ -x "$p" ] && check "$p"; then echo "$p"; exit 0; fi
done
echo "error: no Python $want found. Install it (e.g. 'pyenv install $want' or your OS package python$want) and re-run." >&2
exit 1
