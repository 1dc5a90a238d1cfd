#!/usr/bin/env python3
"""Two running servers must answer alike: sends the same random documents to
both, from C concurrent clients, and counts the answers whose status or bytes
differ. For changes that must not change a response (the parsed-document
map kept by shape, docs/PERFORMANCE.md#documents-kept-by-their-shape): run
the build before and the build after on one database, cache off, and expect
0 different.

  python3 bench/same-answers.py URL_A URL_B [-c 32] [-n 300] [--seed 1]

The documents: the mix's `note(id:)` and `user(id:)` with ids written inline
and of every length, two aliased notes in one document, a field that does not
exist after a literal (so that error locations are compared), a tag filter
beside an id, and a document with a quote in a comment and a syntax error.
Requests are sent as `test-token` (user 1), so private notes are in play."""
import argparse, http.client, json, random, threading, urllib.parse


def documents(rng, n):
    """`n` documents drawn from `rng`."""
    number = lambda: rng.randint(1, 10 ** rng.randint(1, 5))
    for _ in range(n):
        k = rng.random()
        if k < 0.3:
            yield '{ note(id: "%d") { id title author { name } } }' % number()
        elif k < 0.5:
            yield '{ user(id: "%d") { id notes(first: 2) { id tags { name } } } }' % number()
        elif k < 0.65:
            yield '{ a: note(id: "%d") { id } b: note(id: "%d") { id } }' % (number(), number())
        elif k < 0.8:
            yield '{ note(id: "%d") { id nope } }' % number()
        elif k < 0.9:
            tag = rng.choice(['rust', 'go', 'a', 'tag-1', 'zz'])
            yield '{ notes(first: 3, tag: "%s") { id } x: note(id: "%d") { id } }' % (tag, number())
        else:
            yield '{ note(id: "%d") { id } }  # "%d" in a comment\n{ x' % (number(), number())


def connect(url):
    parts = urllib.parse.urlsplit(url)
    return http.client.HTTPConnection(parts.hostname, parts.port or 80, timeout=30)


def post(connection, document):
    headers = {'content-type': 'application/json', 'authorization': 'Bearer test-token'}
    connection.request('POST', '/graphql', json.dumps({'query': document}), headers)
    response = connection.getresponse()
    return response.status, response.read()


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('a')
    parser.add_argument('b')
    parser.add_argument('-c', type=int, default=32, help='concurrent clients (32)')
    parser.add_argument('-n', type=int, default=300, help='documents per client (300)')
    parser.add_argument('--seed', type=int, default=1)
    args = parser.parse_args()
    lock = threading.Lock()
    totals = {'sent': 0, 'with errors': 0, 'different': 0}
    examples = []

    def client(index):
        rng = random.Random(args.seed * 1000 + index)
        a, b = connect(args.a), connect(args.b)
        for document in documents(rng, args.n):
            answer_a, answer_b = post(a, document), post(b, document)
            with lock:
                totals['sent'] += 1
                totals['with errors'] += b'"errors"' in answer_a[1]
                if answer_a != answer_b:
                    totals['different'] += 1
                    examples.append((document, answer_a, answer_b))

    threads = [threading.Thread(target=client, args=(i,)) for i in range(args.c)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    print(', '.join(f'{count} {name}' for name, count in totals.items()))
    for document, answer_a, answer_b in examples[:5]:
        print(f'{document!r}\n  A {answer_a[0]} {answer_a[1][:300]!r}\n  B {answer_b[0]} {answer_b[1][:300]!r}')
    raise SystemExit(1 if totals['different'] else 0)


if __name__ == '__main__':
    main()
