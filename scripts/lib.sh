# Helpers shared by the test and benchmark scripts. Source it; set PY first
# to use a venv's Python (default: python3).
PY=${PY:-python3}

# A TCP port on 127.0.0.1 that is free right now.
free_port() { "$PY" "$(dirname "${BASH_SOURCE[0]}")/free_port.py"; }

# Wait (up to 10 s) until something accepts connections on 127.0.0.1:$1.
wait_port() {
  for _ in $(seq 1 100); do
    if "$PY" -c "import socket,sys; socket.create_connection(('127.0.0.1', int(sys.argv[1])), 0.2)" "$1" 2>/dev/null; then
      return 0
    fi
    sleep 0.1
  done
  echo "nothing listens on port $1" >&2
  return 1
}
