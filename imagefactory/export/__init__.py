"""`imagefactory export`: a golden as a file another hypervisor or cloud imports.

One module per job: `formats` (what each format is and how qemu-img writes it), `source`
(reading a golden without touching it), `convert` (qemu-img with a progress bar),
`ovf` (the OVA's descriptor and manifest), `package` (the tar files of OVA and GCE),
`sidecar` (provenance JSON and SHA256SUMS), `export` (the order of it all).
"""
