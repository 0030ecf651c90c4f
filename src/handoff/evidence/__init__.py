"""What can be proved afterwards: ``audit verify`` (the ledger as anchored, every table as the
ledger says, every object in the handoff bucket accounted for), the Privacy Act accounting of
disclosures, OpenLineage events and the lineage walk.
"""
