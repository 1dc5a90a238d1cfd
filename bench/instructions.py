#!/usr/bin/env python3
"""User-space instructions per request of servers under the published mix,
counted by valgrind's callgrind: a figure that moves little with what else
the machine is doing (two runs of one binary agreed within 1.2%, one with
both cores busy building), for comparing
builds, where CPU time per request (bench/compare.sh) moves by 10% from run
to run on a shared 2-core machine. It leaves out the kernel (sockets,
waking threads), which costs both servers about the same.

  DATABASE_URL=… python3 bench/instructions.py [-n N] [--only nplus1] TARGET…

A TARGET is `baseline` (bench/baseline, bare axum + sqlx, from
CARGO_TARGET_DIR/production) or `NAME=[VAR=value …] BINARY` (one argument,
quoted), run as `BINARY serve` with the response cache off. Each server
starts under callgrind with instrumentation off, gets 300 requests to warm
up, then N (default 600) counted ones: bench/mix.js's queries (userList 30%,
noteDetail 40%, userNotes 30%, ids skewed to low ones) drawn from a fixed
seed, one at a time on one connection, so every target gets the same
requests in the same order. Needs valgrind (Debian's package) and a database
holding the default data set (`notegraph seed`).

With --cache, callgrind also simulates the caches and branch predictors of
this machine and prints, per request, the misses of the first-level
instruction cache (I1) and data cache (D1) and the mispredicted branches:
work that costs cycles without costing instructions, so that a server can
take more CPU time than its instructions alone say (docs/PERFORMANCE.md,
"Futures moved whole, and what instructions leave out"). About twice as
slow."""
import argparse, http.client, json, os, random, re, shutil, signal, subprocess, sys, tempfile, time

PORT = 18094


def requests(n, seed, only):
    """bench/mix.js's documents, from `seed`."""
    rng = random.Random(seed)
    skewed = lambda k: 1 + int((rng.random() ** 2) * k)
    for _ in range(n):
        r = rng.random()
        if only == 'nplus1':
            yield '{ notes(first: 50) { id title author { name } tags { name } } }'
        elif r < 0.3:
            yield '{ users(first: 20) { id name } }'
        elif r < 0.7:
            yield '{ note(id: "%d") { id title author { name } } }' % skewed(100000)
        else:
            yield '{ user(id: "%d") { notes { id title tags { name } } } }' % skewed(10000)


def send(documents):
    """Posts each document; fails on an error or a non-200 answer."""
    conn = http.client.HTTPConnection('127.0.0.1', PORT, timeout=120)
    headers = {'content-type': 'application/json', 'authorization': 'Bearer test-token'}
    for document in documents:
        conn.request('POST', '/graphql', json.dumps({'query': document}), headers)
        response = conn.getresponse()
        body = response.read()
        if response.status != 200 or b'"errors"' in body:
            sys.exit(f'{document}: {response.status} {body[:200]!r}')
    conn.close()


def wait_ready(process):
    for _ in range(600):
        if process.poll() is not None:
            sys.exit('the server exited; see its log')
        try:
            send(['{ users(first: 20) { id name } }'])
            return
        except (OSError, http.client.HTTPException):
            time.sleep(0.5)
    sys.exit('the server did not answer within 5 minutes')


def measure(name, command, env, args, workdir):
    log = os.path.join(workdir, f'{name}.log')
    out = os.path.join(workdir, f'{name}.%p.out')
    valgrind = ['valgrind', '--tool=callgrind', '--instr-atstart=no', f'--callgrind-out-file={out}']
    if args.cache:
        valgrind[2:2] = ['--cache-sim=yes', '--branch-sim=yes']
    with open(log, 'w') as sink:
        process = subprocess.Popen(valgrind + command, env=env, stdout=sink, stderr=sink)
    try:
        wait_ready(process)
        send(requests(300, 7, args.only))
        subprocess.run(['callgrind_control', '-i', 'on', str(process.pid)], check=True, capture_output=True)
        send(requests(args.n, 1, args.only))
        subprocess.run(['callgrind_control', '-d', str(process.pid)], check=True, capture_output=True)
        subprocess.run(['callgrind_control', '-i', 'off', str(process.pid)], check=True, capture_output=True)
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait()
    text = open(log).read()
    events, collected = re.search(r'Events +: (.+)', text), re.search(r'Collected : (.+)', text)
    if not events or not collected:
        sys.exit(f'{name}: callgrind reported nothing; see {log}')
    counts = dict(zip(events.group(1).split(), map(int, collected.group(1).split())))
    return {event: count / args.n for event, count in counts.items()}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('-n', type=int, default=600, help='requests counted per target (600)')
    parser.add_argument('--only', choices=['nplus1'], help="issue 30's page of 50 notes instead of the mix")
    parser.add_argument('--cache', action='store_true', help='also simulate caches and branches: misses per request')
    parser.add_argument('targets', nargs='+')
    args = parser.parse_args()
    if 'DATABASE_URL' not in os.environ:
        sys.exit('set DATABASE_URL to a database seeded with the default data set')
    if not shutil.which('valgrind'):
        sys.exit('valgrind is missing (Debian: apt-get install valgrind)')
    target_dir = os.environ.get('CARGO_TARGET_DIR', 'target')
    workdir = tempfile.mkdtemp(prefix='instructions-')
    results = []
    for target in args.targets:
        env = dict(os.environ, RUST_LOG='warn')
        if target == 'baseline':
            name, command = 'baseline', [os.path.join(target_dir, 'production', 'baseline'), f'127.0.0.1:{PORT}']
        elif '=' in target:
            name, rest = target.split('=', 1)
            *settings, binary = rest.split()
            env.update(s.split('=', 1) for s in settings)
            env.update(NOTEGRAPH_LISTEN=f'127.0.0.1:{PORT}', NOTEGRAPH_CACHE_ENABLED='false')
            command = [binary, 'serve']
        else:
            sys.exit(f'not baseline or NAME=BINARY: {target}')
        counts = measure(name, command, env, args, workdir)
        results.append((name, counts['Ir']))
        line = f'{name:12} {counts["Ir"]:10,.0f} instructions per request'
        if args.cache:
            line += (f'; I1 misses {counts["I1mr"]:,.0f}, D1 misses {counts["D1mr"] + counts["D1mw"]:,.0f}, '
                     f'mispredicted branches {counts["Bcm"] + counts["Bim"]:,.0f}')
        print(line, flush=True)
    base = dict(results).get('baseline')
    if base:
        for name, per_request in results:
            if name != 'baseline':
                print(f'{name:12} {per_request / base:.2f}x the bare server (instructions)')
    print(f'(callgrind files and logs in {workdir})')


if __name__ == '__main__':
    main()
