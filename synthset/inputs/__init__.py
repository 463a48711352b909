"""Reading the files users hand us (manifests, items files, tables, configs) without trusting
them: a known encoding, bounded YAML and JSON, well-formed rows, paths inside allowed folders.

Every problem becomes one `InputError` line naming the file and where in it; nothing here
knows what a manifest or a table means.
"""
