# Sourced by the wrappers (train/predict/merge/chat/api.sh, demo.sh) before they start
# llamafactory-cli: puts xrayqwen2vl's lf_boot folder first on PYTHONPATH, so that every process
# LLaMA-Factory starts (each torchrun rank too) installs the inference shim that makes Qwen VL image
# positions right at inference under transformers >= 5.3 (src/xrayqwen2vl/lf_shim.py says why).
# Not a command of its own.
_xq_boot="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/src/xrayqwen2vl/lf_boot"
if [ ! -f "$_xq_boot/sitecustomize.py" ]; then  # scripts/ without src/ beside it: the installed package
  _xq_boot="$(python3 -c 'import xrayqwen2vl.lf_shim as s; print(s.BOOT_DIR)' 2>/dev/null || true)"
fi
if [ -n "$_xq_boot" ] && [ -f "$_xq_boot/sitecustomize.py" ]; then
  case ":${PYTHONPATH:-}:" in
    *":$_xq_boot:"*) ;;
    *) export PYTHONPATH="$_xq_boot${PYTHONPATH:+:$PYTHONPATH}" ;;
  esac
else
  echo "${0##*/}: warning: xrayqwen2vl's lf_boot folder not found (pip install -e .): Qwen VL image positions at inference may be wrong" >&2
fi
unset _xq_boot
