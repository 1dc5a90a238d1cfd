"""Check that the server's SDL is backward compatible with the spec SDL.

Checks (graphql-core, see requirements.txt):
  1. find_breaking_changes(spec, actual) is empty (removed types/fields/args,
     changed types, new required args, ...);
  2. every field argument and input field present in both schemas has the
     same default value (find_breaking_changes does not look at defaults).
     Defaults are compared as GraphQL literals printed from the coerced value,
     so formatting differences (`[ ]` vs `[]`, field order) don't matter.
Dangerous changes (find_dangerous_changes) are printed as `info:` lines only.

Prints one line per problem, then `schema-compat: N passed, N failed`, where
passed = checks that found nothing (1 for breaking changes + 1 per compared
default) and failed = problems found. Exits 1 if any problem, else 0.

Usage:
  pip install --target /tmp/sc-py -r tests/schema-compat/requirements.txt
  /path/to/notegraph print-schema > /tmp/actual.graphql
  PYTHONPATH=/tmp/sc-py python3 tests/schema-compat/check.py \
      spec/schema.graphql /tmp/actual.graphql
"""

import sys

from graphql import (
    Undefined,
    ast_from_value,
    build_schema,
    find_breaking_changes,
    find_dangerous_changes,
    is_input_object_type,
    is_interface_type,
    is_object_type,
    is_specified_directive,
    print_ast,
)


def load(path):
    with open(path, encoding="utf-8") as f:
        return build_schema(f.read())


def show_default(value, type_):
    """A default value as a GraphQL literal, or '(none)' when there is none."""
    if value is Undefined:
        return "(none)"
    try:
        node = ast_from_value(value, type_)
    except Exception:  # e.g. an enum value the type no longer has
        node = None
    return print_ast(node) if node else repr(value)


def defaults(schema):
    """{coordinate: (default_value, type)} for every field argument, input
    field and custom directive argument, e.g. 'Query.notes(first:)'."""
    out = {}
    for type_ in schema.type_map.values():
        if type_.name.startswith("__"):
            continue
        if is_object_type(type_) or is_interface_type(type_):
            for fname, field in type_.fields.items():
                for aname, arg in field.args.items():
                    out[f"{type_.name}.{fname}({aname}:)"] = (arg.default_value, arg.type)
        elif is_input_object_type(type_):
            for fname, field in type_.fields.items():
                out[f"{type_.name}.{fname}"] = (field.default_value, field.type)
    for directive in schema.directives:
        if not is_specified_directive(directive):
            for aname, arg in directive.args.items():
                out[f"@{directive.name}({aname}:)"] = (arg.default_value, arg.type)
    return out


def main(spec_path, actual_path):
    spec, actual = load(spec_path), load(actual_path)
    passed, failed = 0, 0

    breaking = find_breaking_changes(spec, actual)
    for change in breaking:
        print(f"breaking: {change.type.name}: {change.description}")
    failed += len(breaking)
    passed += not breaking

    spec_defaults, actual_defaults = defaults(spec), defaults(actual)
    for coord in sorted(spec_defaults.keys() & actual_defaults.keys()):
        want = show_default(*spec_defaults[coord])
        got = show_default(*actual_defaults[coord])
        if want == got:
            passed += 1
        else:
            print(f"default: {coord} is {got} in the server, spec says {want}")
            failed += 1

    for change in find_dangerous_changes(spec, actual):
        print(f"info: dangerous: {change.type.name}: {change.description}")

    print(f"schema-compat: {passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: check.py SPEC.graphql ACTUAL.graphql")
    sys.exit(main(sys.argv[1], sys.argv[2]))
