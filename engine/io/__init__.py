"""Files <-> data: one table of file kinds and suffixes, readers and writers per format (DICOM, DICOM-SEG,
NIfTI, raster, challenge .npz) and one dispatch (open_image, read_labelmap, write_labelmap).
"""
