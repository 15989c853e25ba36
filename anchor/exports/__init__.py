"""The exports people exchange: EPCIS 2.0 events (:mod:`anchor.exports.epcis`), the
FSMA 204 sortable spreadsheet (:mod:`anchor.exports.fsma`), GS1 Digital Link resolver
linksets (:mod:`anchor.exports.resolver`) and units in words (:mod:`anchor.exports.units`).
Each is built from the same provenance answer the consumer page shows."""
