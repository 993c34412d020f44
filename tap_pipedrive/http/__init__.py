"""HTTP to Pipedrive.

The client (``client``), paging (``paging``), the status rules (``status``), and the burst
window and token budget (``limits``).
"""
