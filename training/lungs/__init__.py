"""The lung segmenter: training it and the contact sheets that show its contours."""
